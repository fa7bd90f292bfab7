/* Exercisers of terminals for patchtest's default load (class tty of
 * patchtest/guest/load.sh):
 *
 *   vt   the virtual console's ioctls on /dev/tty1 (KDGETMODE, KDGKBTYPE,
 *        VT_GETSTATE, VT_GETMODE, KDGKBMODE, ...: vt_ioctl) and its screen
 *        memory read and written through /dev/vcs1 and /dev/vcsa1 (the
 *        guest's console is the serial port: nobody looks at tty1)
 *   pty  a pseudo-terminal pair: termios, window size, data both ways
 */
#include "load.h"

#include <fcntl.h>
#include <linux/kd.h>
#include <linux/vt.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>

/* Opens the character device `name` of /dev, or a node of our own for it
 * where devtmpfs has none. */
static int open_dev(const char *name, unsigned major, unsigned minor, int flags)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/dev/%s", name);
	fd = open(path, flags | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	snprintf(path, sizeof(path), "/tmp/patchtest-%s.%d", name, (int)getpid());
	if (mknod(path, S_IFCHR | 0600, makedev(major, minor)) != 0)
		return -1;
	fd = open(path, flags | O_NOCTTY | O_CLOEXEC);
	unlink(path);
	return fd;
}

static int ex_vt(NO_ARG)
{
	struct vt_stat state;
	struct vt_mode mode;
	char buf[256];
	long arg;
	int tty, vcs, rc = 0;

	tty = open_dev("tty1", 4, 1, O_RDWR | O_NONBLOCK);
	if (tty < 0)
		return FAIL("open tty1");
	if (ioctl(tty, KDGETMODE, &arg) != 0)
		rc = FAIL("KDGETMODE");
	ioctl(tty, KDGKBTYPE, buf);
	ioctl(tty, VT_GETSTATE, &state);
	ioctl(tty, VT_GETMODE, &mode);
	ioctl(tty, KDGKBMODE, &arg);
	ioctl(tty, KDGKBMETA, &arg);
	ioctl(tty, KDGKBLED, buf);
	ioctl(tty, VT_OPENQRY, &arg);
	for (int i = 0; i < 2; i++) {
		vcs = open_dev(i ? "vcsa1" : "vcs1", 7, i ? 129 : 1, O_RDWR);
		if (vcs < 0) {
			rc = FAIL("open vcs1");
			continue;
		}
		if (read(vcs, buf, sizeof(buf)) < 0)
			rc = FAIL("read vcs");
		/* Back what was read, where it was read. */
		if (pwrite(vcs, buf, i ? 64 : 80, i ? 4 : 0) < 0)
			rc = FAIL("write vcs");
		close(vcs);
	}
	close(tty);
	return rc;
}

static int ex_pty(NO_ARG)
{
	struct termios t;
	struct winsize ws = { .ws_row = 24, .ws_col = 80 };
	char name[64], buf[256];
	int master, slave;

	master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK);
	if (master < 0)
		return FAIL("posix_openpt");
	if (grantpt(master) != 0 || unlockpt(master) != 0 || ptsname_r(master, name, sizeof(name)) != 0) {
		close(master);
		return FAIL("pty setup");
	}
	slave = open(name, O_RDWR | O_NOCTTY | O_NONBLOCK);
	if (slave < 0) {
		close(master);
		return FAIL("open pty slave");
	}
	tcgetattr(slave, &t);
	cfmakeraw(&t);
	tcsetattr(slave, TCSANOW, &t);
	ioctl(master, TIOCSWINSZ, &ws);
	ioctl(slave, TIOCGWINSZ, &ws);
	for (int i = 0; i < 8; i++) {
		(void)!write(master, "patchtest\n", 10);
		sleep_ms(1);
		(void)!read(slave, buf, sizeof(buf));
		(void)!write(slave, "back\n", 5);
		sleep_ms(1);
		(void)!read(master, buf, sizeof(buf));
	}
	tcflush(slave, TCIOFLUSH);
	close(slave);
	close(master);
	return 0;
}

static const struct exerciser exercisers[] = {
	{ "vt", ex_vt, 10 },
	{ "pty", ex_pty, 10 },
};

int main(int argc, char **argv)
{
	return RUN(exercisers);
}
