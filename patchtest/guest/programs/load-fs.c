/* Exercisers of file systems for patchtest's default load (class fs of
 * patchtest/guest/load.sh):
 *
 *   inotify  watches on a directory added, added again (which updates
 *            the existing watch: inotify_update_watch), extended with
 *            IN_MASK_ADD, triggered by creating, writing and removing a
 *            file, read and removed; fanotify is not used
 *   locks    POSIX record locks, open file description locks and flock on
 *            a file, a lease, and a child waiting for a lock
 *   splice   a file spliced into a pipe and back, sendfile and
 *            copy_file_range between files
 *   fscrypt=DIR  encryption policies (v1 and v2, AES-256-XTS/CTS) set on
 *            and read from new empty directories under DIR, a mounted file
 *            system with encryption enabled; no key is added, so nothing is
 *            encrypted with them
 *   mkexfat=IMAGE  an empty 8 MiB exFAT file system made in the file IMAGE
 *            (busybox makes none): boot region and its checksum, FAT, the
 *            allocation bitmap and a root directory holding its entry; no
 *            up-case table, so the kernel uses its default one
 *   mkhfsplus=IMAGE  an 8 MiB HFS+ volume of a volume header (and its
 *            backup) and nothing else: a mount reads it and opens the
 *            extents B-tree's inode (hfsplus_iget), finds the tree empty
 *            and refuses the volume; the attempt is the exercise
 */
#include "load.h"

#include <fcntl.h>
#include <linux/fscrypt.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/inotify.h>
#include <sys/sendfile.h>
#include <sys/stat.h>

static char workdir[64];

static int make_workdir(void)
{
	snprintf(workdir, sizeof(workdir), "/tmp/patchtest-fs.%d", (int)getpid());
	if (mkdir(workdir, 0700) != 0 && errno != EEXIST)
		return FAIL("mkdir");
	return 0;
}

static void path_in(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", workdir, name);
}

/* --- inotify --- */

static int ex_inotify(NO_ARG)
{
	char file[128], events[4096];
	int fd, rc = 0;

	if (make_workdir())
		return 1;
	path_in(file, sizeof(file), "watched");
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return FAIL("inotify_init1");
	for (int i = 0; i < 8; i++) {
		int w = inotify_add_watch(fd, workdir, IN_CREATE);
		int f;

		if (w < 0) {
			rc = FAIL("inotify_add_watch");
			break;
		}
		/* The same inode again: the watch is updated, not added. */
		inotify_add_watch(fd, workdir, IN_DELETE | IN_MASK_ADD);
		inotify_add_watch(fd, workdir, IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE);
		f = open(file, O_CREAT | O_WRONLY | O_TRUNC, 0600);
		if (f >= 0) {
			(void)!write(f, "x", 1);
			close(f);
		}
		inotify_add_watch(fd, file, IN_ATTRIB | IN_DELETE_SELF);
		chmod(file, 0644);
		unlink(file);
		while (read(fd, events, sizeof(events)) > 0)
			;
		inotify_rm_watch(fd, w);
	}
	close(fd);
	rmdir(workdir);
	return rc;
}

/* --- locks --- */

static int ex_locks(NO_ARG)
{
	char file[128];
	struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10 };
	int fd, other, rc = 0;
	pid_t pid;

	if (make_workdir())
		return 1;
	path_in(file, sizeof(file), "locked");
	fd = open(file, O_CREAT | O_RDWR | O_TRUNC, 0600);
	if (fd < 0)
		return FAIL("open");
	(void)!write(fd, "0123456789abcdef", 16);
	if (fcntl(fd, F_SETLK, &lk) != 0)
		rc = FAIL("F_SETLK");
	/* A child blocks on the range until we unlock it. */
	pid = fork();
	if (pid == 0) {
		int f = open(file, O_RDWR);
		struct flock w = lk;

		fcntl(f, F_SETLKW, &w);
		w.l_type = F_UNLCK;
		fcntl(f, F_SETLK, &w);
		_exit(0);
	}
	sleep_ms(5);
	lk.l_type = F_UNLCK;
	fcntl(fd, F_SETLK, &lk);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	lk.l_type = F_RDLCK;
	lk.l_pid = 0;
	fcntl(fd, F_OFD_SETLK, &lk);
	fcntl(fd, F_OFD_GETLK, &lk);
	lk.l_type = F_UNLCK;
	fcntl(fd, F_OFD_SETLK, &lk);
	flock(fd, LOCK_EX);
	other = open(file, O_RDONLY);
	if (other >= 0) {
		flock(other, LOCK_SH | LOCK_NB); /* EWOULDBLOCK */
		close(other);
	}
	flock(fd, LOCK_UN);
	close(fd);
	fd = open(file, O_RDONLY);
	if (fd >= 0) {
		if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0)
			fcntl(fd, F_SETLEASE, F_UNLCK);
		close(fd);
	}
	unlink(file);
	rmdir(workdir);
	return rc;
}

/* --- splice --- */

static int ex_splice(NO_ARG)
{
	char from[128], to[128], buf[16384];
	int in, out, p[2], rc = 0;
	loff_t off = 0;

	if (make_workdir())
		return 1;
	path_in(from, sizeof(from), "from");
	path_in(to, sizeof(to), "to");
	in = open(from, O_CREAT | O_RDWR | O_TRUNC, 0600);
	out = open(to, O_CREAT | O_RDWR | O_TRUNC, 0600);
	if (in < 0 || out < 0 || pipe(p) != 0)
		return FAIL("open");
	memset(buf, 'p', sizeof(buf));
	(void)!write(in, buf, sizeof(buf));
	if (splice(in, &off, p[1], NULL, 8192, 0) < 0)
		rc = FAIL("splice to a pipe");
	if (splice(p[0], NULL, out, NULL, 8192, 0) < 0)
		rc = FAIL("splice from a pipe");
	off = 0;
	if (sendfile(out, in, &off, sizeof(buf)) < 0)
		rc = FAIL("sendfile");
	loff_t a = 0, b = 0;
	copy_file_range(in, &a, out, &b, sizeof(buf), 0);
	fsync(out);
	close(p[0]);
	close(p[1]);
	close(in);
	close(out);
	unlink(from);
	unlink(to);
	rmdir(workdir);
	return rc;
}

/* --- fscrypt --- */

static int ex_fscrypt(const char *arg)
{
	struct fscrypt_policy_v1 v1 = {
		.version = FSCRYPT_POLICY_V1,
		.contents_encryption_mode = FSCRYPT_MODE_AES_256_XTS,
		.filenames_encryption_mode = FSCRYPT_MODE_AES_256_CTS,
		.flags = FSCRYPT_POLICY_FLAGS_PAD_32,
		.master_key_descriptor = "ptload1",
	};
	struct fscrypt_policy_v2 v2 = {
		.version = FSCRYPT_POLICY_V2,
		.contents_encryption_mode = FSCRYPT_MODE_AES_256_XTS,
		.filenames_encryption_mode = FSCRYPT_MODE_AES_256_CTS,
		.flags = FSCRYPT_POLICY_FLAGS_PAD_32,
		.master_key_identifier = "patchtest-load-2",
	};
	struct fscrypt_get_policy_ex_arg got = { .policy_size = sizeof(got.policy) };
	char dir[256];
	int rc = 0;

	if (!arg) {
		WARN("fscrypt: give the mounted directory: fscrypt=DIR\n");
		return 1;
	}
	for (int i = 0; i < 2; i++) {
		int fd;

		snprintf(dir, sizeof(dir), "%s/fscrypt-v%d", arg, i + 1);
		if (mkdir(dir, 0700) != 0)
			return FAIL("fscrypt: mkdir");
		fd = open(dir, O_RDONLY | O_DIRECTORY);
		if (fd < 0) {
			rmdir(dir);
			return FAIL("fscrypt: open");
		}
		if (ioctl(fd, FS_IOC_SET_ENCRYPTION_POLICY, i ? (void *)&v2 : (void *)&v1) != 0)
			rc = FAIL("FS_IOC_SET_ENCRYPTION_POLICY");
		ioctl(fd, FS_IOC_GET_ENCRYPTION_POLICY_EX, &got);
		close(fd);
		rmdir(dir);
	}
	return rc;
}

/* --- mkexfat --- */

#define EXFAT_SECTOR 512
#define EXFAT_SECTORS 16384 /* 8 MiB */
#define EXFAT_CLUSTER_SHIFT 3 /* 4 KiB clusters */
#define EXFAT_FAT_OFFSET 24
#define EXFAT_FAT_LENGTH 16
#define EXFAT_HEAP_OFFSET 64
#define EXFAT_CLUSTERS ((EXFAT_SECTORS - EXFAT_HEAP_OFFSET) >> EXFAT_CLUSTER_SHIFT)
#define EXFAT_BITMAP_CLUSTER 2
#define EXFAT_ROOT_CLUSTER 3

static void put16(unsigned char *p, unsigned v)
{
	p[0] = v;
	p[1] = v >> 8;
}

static void put32(unsigned char *p, unsigned long v)
{
	put16(p, v & 0xffff);
	put16(p + 2, v >> 16);
}

static void put64(unsigned char *p, unsigned long long v)
{
	put32(p, v & 0xffffffff);
	put32(p + 4, v >> 32);
}

static off_t cluster_offset(unsigned cluster)
{
	return ((off_t)EXFAT_HEAP_OFFSET + ((off_t)(cluster - 2) << EXFAT_CLUSTER_SHIFT)) * EXFAT_SECTOR;
}

static int ex_mkexfat(const char *image)
{
	static unsigned char boot[12][EXFAT_SECTOR];
	unsigned char fat[EXFAT_SECTOR] = { 0 }, dir[EXFAT_SECTOR] = { 0 }, bitmap[EXFAT_SECTOR] = { 0 };
	unsigned bitmap_size = (EXFAT_CLUSTERS - 1) / 8 + 1;
	unsigned long sum = 0;
	int fd, rc = 0;

	if (!image) {
		WARN("mkexfat: give the image file: mkexfat=IMAGE\n");
		return 1;
	}
	memset(boot, 0, sizeof(boot));
	/* The boot sector. */
	memcpy(boot[0], "\xeb\x76\x90" "EXFAT   ", 11);
	put64(boot[0] + 0x48, EXFAT_SECTORS);	     /* volume length */
	put32(boot[0] + 0x50, EXFAT_FAT_OFFSET);     /* FAT offset */
	put32(boot[0] + 0x54, EXFAT_FAT_LENGTH);     /* FAT length */
	put32(boot[0] + 0x58, EXFAT_HEAP_OFFSET);    /* cluster heap offset */
	put32(boot[0] + 0x5c, EXFAT_CLUSTERS);	     /* cluster count */
	put32(boot[0] + 0x60, EXFAT_ROOT_CLUSTER);   /* root directory */
	put32(boot[0] + 0x64, 0x50544c44);	     /* serial number */
	put16(boot[0] + 0x68, 0x0100);		     /* revision 1.0 */
	boot[0][0x6c] = 9;			     /* bytes per sector: 512 */
	boot[0][0x6d] = EXFAT_CLUSTER_SHIFT;	     /* sectors per cluster */
	boot[0][0x6e] = 1;			     /* FATs */
	boot[0][0x6f] = 0x80;			     /* drive select */
	put16(boot[0] + 510, 0xaa55);
	/* Extended boot sectors 1-8 end in their signature. */
	for (int i = 1; i <= 8; i++)
		put32(boot[i] + EXFAT_SECTOR - 4, 0xaa550000);
	/* Sector 11: the checksum of sectors 0-10 (the boot sector's volume
	 * flags and percent in use left out), repeated. */
	for (int i = 0; i < 11; i++)
		for (int b = 0; b < EXFAT_SECTOR; b++) {
			if (i == 0 && (b == 106 || b == 107 || b == 112))
				continue;
			sum = (((sum << 31) | (sum >> 1)) + boot[i][b]) & 0xffffffff;
		}
	for (int b = 0; b < EXFAT_SECTOR; b += 4)
		put32(boot[11] + b, sum);
	/* FAT: media, reserved, and one cluster each for the bitmap and the
	 * root directory. */
	put32(fat, 0xfffffff8);
	put32(fat + 4, 0xffffffff);
	put32(fat + 4 * EXFAT_BITMAP_CLUSTER, 0xffffffff);
	put32(fat + 4 * EXFAT_ROOT_CLUSTER, 0xffffffff);
	bitmap[0] = 0x03; /* clusters 2 and 3 in use */
	/* The root directory: the allocation bitmap's entry. */
	dir[0] = 0x81;
	put32(dir + 20, EXFAT_BITMAP_CLUSTER);
	put64(dir + 24, bitmap_size);

	fd = open(image, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	if (fd < 0)
		return FAIL("mkexfat: open");
	if (pwrite(fd, boot, sizeof(boot), 0) != sizeof(boot) ||
	    pwrite(fd, boot, sizeof(boot), sizeof(boot)) != sizeof(boot) || /* backup */
	    pwrite(fd, fat, sizeof(fat), EXFAT_FAT_OFFSET * EXFAT_SECTOR) != sizeof(fat) ||
	    pwrite(fd, bitmap, sizeof(bitmap), cluster_offset(EXFAT_BITMAP_CLUSTER)) != sizeof(bitmap) ||
	    pwrite(fd, dir, sizeof(dir), cluster_offset(EXFAT_ROOT_CLUSTER)) != sizeof(dir) ||
	    ftruncate(fd, (off_t)EXFAT_SECTORS * EXFAT_SECTOR) != 0)
		rc = FAIL("mkexfat: write");
	close(fd);
	return rc;
}

/* --- mkhfsplus --- */

static void put16be(unsigned char *p, unsigned v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static void put32be(unsigned char *p, unsigned long v)
{
	put16be(p, (v >> 16) & 0xffff);
	put16be(p + 2, v & 0xffff);
}

static int ex_mkhfsplus(const char *image)
{
	const off_t size = 8 << 20;
	unsigned char header[512] = { 0 };
	int fd, rc = 0;

	if (!image) {
		WARN("mkhfsplus: give the image file: mkhfsplus=IMAGE\n");
		return 1;
	}
	put16be(header + 0, 0x482b);		/* signature "H+" */
	put16be(header + 2, 4);			/* version */
	put32be(header + 4, 0x100);		/* attributes: unmounted cleanly */
	put32be(header + 8, 0x31302e30);	/* last mounted by "10.0" */
	put32be(header + 40, 4096);		/* block size */
	put32be(header + 44, size / 4096);	/* total blocks */
	put32be(header + 48, size / 4096 - 1);	/* free blocks */
	fd = open(image, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	if (fd < 0)
		return FAIL("mkhfsplus: open");
	/* At 1 KiB, and the backup 1 KiB before the end. */
	if (pwrite(fd, header, sizeof(header), 1024) != sizeof(header) ||
	    pwrite(fd, header, sizeof(header), size - 1024) != sizeof(header) || ftruncate(fd, size) != 0)
		rc = FAIL("mkhfsplus: write");
	close(fd);
	return rc;
}

static const struct exerciser exercisers[] = {
	{ "inotify", ex_inotify, 10 },
	{ "locks", ex_locks, 10 },
	{ "splice", ex_splice, 10 },
	{ "fscrypt", ex_fscrypt, 10 },
	{ "mkexfat", ex_mkexfat, 10 },
	{ "mkhfsplus", ex_mkhfsplus, 10 },
};

int main(int argc, char **argv)
{
	return RUN(exercisers);
}
