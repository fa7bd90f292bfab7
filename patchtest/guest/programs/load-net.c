/* Exercisers of networking on loopback for patchtest's default load (class
 * net of patchtest/guest/load.sh):
 *
 *   tcp     a TCP connection on 127.0.0.1 carrying data both ways
 *   unix    unix stream and datagram socket pairs, a descriptor passed in
 *           flight (SCM_RIGHTS, peeked, received) and a socket closed with
 *           itself in flight, which queues the garbage collector
 *   sctp    an SCTP association on 127.0.0.1 carrying messages (only
 *           where the sctp module is loaded)
 *   arp     the ARP table ioctls (SIOCGARP, SIOCDARP) for 127.0.0.1 on lo
 *   llc     an LLC datagram socket that sends unbound (autobind), only
 *           where the llc2 module is loaded
 *   packet  packet sockets sending on lo
 *   tipc    a TIPC bearer enabled on a dummy Ethernet device of our own
 *           and disabled again (generic netlink), where the tipc and
 *           dummy modules are loaded; the device is removed after
 */
#include "load.h"

/* glibc's net/if.h before the kernel's headers, which then leave its
 * definitions alone. */
#include <net/if.h>

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/genetlink.h>
#include <linux/llc.h>
#include <linux/rtnetlink.h>
#include <linux/tipc.h>
#include <linux/tipc_netlink.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#ifndef IPPROTO_SCTP
#define IPPROTO_SCTP 132
#endif

/* Waits up to `ms` for `events` on `fd`. */
static int wait_for(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };

	return poll(&p, 1, ms) == 1 ? 0 : -1;
}

/* A connected pair over 127.0.0.1 of `type`/`protocol`: *client, *server. */
static int loopback_pair(int type, int protocol, int *client, int *server)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int l, c, s = -1;

	l = socket(AF_INET, type | SOCK_CLOEXEC, protocol);
	if (l < 0)
		return -1;
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 4) != 0 ||
	    getsockname(l, (struct sockaddr *)&a, &len) != 0) {
		close(l);
		return -1;
	}
	c = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
	if (c >= 0) {
		if (connect(c, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EINPROGRESS) {
			if (wait_for(l, POLLIN, 3000) == 0)
				s = accept(l, NULL, NULL);
		}
	}
	close(l);
	if (c < 0 || s < 0 || wait_for(c, POLLOUT, 3000) != 0) {
		if (c >= 0)
			close(c);
		if (s >= 0)
			close(s);
		return -1;
	}
	*client = c;
	*server = s;
	return 0;
}

/* Sends `rounds` messages of `size` from a to b and back, bounded in time. */
static int exchange(int a, int b, int rounds, size_t size)
{
	static char buf[65536];
	int fds[2] = { a, b };

	memset(buf, 'n', sizeof(buf));
	for (int r = 0; r < rounds; r++) {
		for (int d = 0; d < 2; d++) {
			int from = fds[d], to = fds[1 - d];
			size_t got = 0;

			if (wait_for(from, POLLOUT, 2000) != 0 || send(from, buf, size, MSG_DONTWAIT) <= 0)
				return -1;
			while (got < size) {
				ssize_t n;

				if (wait_for(to, POLLIN, 2000) != 0)
					return -1;
				n = recv(to, buf, sizeof(buf), MSG_DONTWAIT);
				if (n <= 0)
					return -1;
				got += (size_t)n;
			}
		}
	}
	return 0;
}

static int ex_tcp(NO_ARG)
{
	int c, s, rc;

	if (loopback_pair(SOCK_STREAM, 0, &c, &s) != 0)
		return FAIL("tcp: connect on 127.0.0.1");
	rc = exchange(c, s, 16, 4096) != 0 ? FAIL("tcp: exchange") : 0;
	shutdown(c, SHUT_WR);
	close(c);
	close(s);
	return rc;
}

static int ex_sctp(NO_ARG)
{
	int c, s, rc, probe;

	probe = socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP);
	if (probe < 0)
		return 0; /* no sctp module: nothing to exercise */
	close(probe);
	if (loopback_pair(SOCK_STREAM, IPPROTO_SCTP, &c, &s) != 0)
		return FAIL("sctp: connect on 127.0.0.1");
	rc = exchange(c, s, 8, 1024) != 0 ? FAIL("sctp: exchange") : 0;
	close(c);
	close(s);
	return rc;
}

/* Sends `fd` over the unix socket `via` (SCM_RIGHTS). */
static int send_fd(int via, int fd)
{
	char control[CMSG_SPACE(sizeof(int))] = { 0 };
	char byte = 'f';
	struct iovec v = { &byte, 1 };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(via, &m, MSG_DONTWAIT) == 1 ? 0 : -1;
}

/* Receives (or peeks at) a message and closes any descriptor in it. */
static void recv_fd(int via, int flags)
{
	char control[CMSG_SPACE(sizeof(int) * 4)];
	char byte;
	struct iovec v = { &byte, 1 };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof(control) };

	if (recvmsg(via, &m, flags | MSG_DONTWAIT | MSG_CMSG_CLOEXEC) < 0)
		return;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			int fds[4];

			memcpy(fds, CMSG_DATA(c), n * sizeof(int));
			for (int i = 0; i < n; i++)
				close(fds[i]);
		}
	}
}

static int ex_unix(NO_ARG)
{
	int p[2], rc = 0;

	for (int type = 0; type < 2; type++) {
		int t = type ? SOCK_DGRAM : SOCK_STREAM;

		if (socketpair(AF_UNIX, t | SOCK_CLOEXEC, 0, p) != 0)
			return FAIL("socketpair");
		if (t == SOCK_STREAM && exchange(p[0], p[1], 8, 2048) != 0)
			rc = FAIL("unix stream exchange");
		/* A descriptor in flight, peeked at, then received. */
		if (send_fd(p[0], p[1]) == 0) {
			recv_fd(p[1], MSG_PEEK);
			recv_fd(p[1], 0);
		}
		/* A socket that holds itself in flight: only the garbage
		 * collector frees it, which closing queues. */
		send_fd(p[0], p[1]);
		send_fd(p[1], p[0]);
		close(p[0]);
		close(p[1]);
	}
	return rc;
}

static int ex_arp(NO_ARG)
{
	struct arpreq req;
	struct sockaddr_in *pa = (struct sockaddr_in *)&req.arp_pa;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return FAIL("socket");
	memset(&req, 0, sizeof(req));
	pa->sin_family = AF_INET;
	pa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	strncpy(req.arp_dev, "lo", sizeof(req.arp_dev) - 1);
	/* No entry for 127.0.0.1: both fail with ENXIO, after the lookup. */
	ioctl(fd, SIOCGARP, &req);
	ioctl(fd, SIOCDARP, &req);
	close(fd);
	return 0;
}

static int ex_llc(NO_ARG)
{
	struct sockaddr_llc a = { .sllc_family = AF_LLC, .sllc_arphrd = ARPHRD_ETHER, .sllc_sap = 0x42 };
	int fd = socket(AF_LLC, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 0; /* no llc2 module */
	/* Unbound: the send binds it first (it fails without an Ethernet
	 * device, after the bind was tried). */
	sendto(fd, "llc", 3, MSG_DONTWAIT, (struct sockaddr *)&a, sizeof(a));
	close(fd);
	fd = socket(AF_LLC, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		connect(fd, (struct sockaddr *)&a, sizeof(a));
		close(fd);
	}
	return 0;
}

static int ex_packet(NO_ARG)
{
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_protocol = htons(0x88b5), .sll_halen = 6 };
	char frame[64] = { 0 };
	int rc = 0;

	to.sll_ifindex = if_nametoindex("lo");
	if (!to.sll_ifindex)
		return FAIL("if_nametoindex lo");
	for (int type = 0; type < 2; type++) {
		int fd = socket(AF_PACKET, (type ? SOCK_RAW : SOCK_DGRAM) | SOCK_CLOEXEC, htons(0x88b5));

		if (fd < 0)
			return FAIL("packet socket");
		/* 0x88b5: the IEEE local experimental EtherType. */
		if (sendto(fd, frame, sizeof(frame), 0, (struct sockaddr *)&to, sizeof(to)) < 0)
			rc = FAIL("packet sendto");
		recv(fd, frame, sizeof(frame), MSG_DONTWAIT);
		close(fd);
	}
	return rc;
}

/* --- tipc --- */

/* A netlink request being built: header, payload, attributes. */
struct nlreq {
	struct nlmsghdr h;
	char buf[512];
};

static void *nl_tail(struct nlreq *r)
{
	return (char *)r + NLMSG_ALIGN(r->h.nlmsg_len);
}

static void nl_put(struct nlreq *r, unsigned short type, const void *data, size_t len)
{
	struct nlattr *a = nl_tail(r);

	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	memcpy((char *)a + NLA_HDRLEN, data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static struct nlattr *nl_nest(struct nlreq *r, unsigned short type)
{
	struct nlattr *a = nl_tail(r);

	nl_put(r, type | NLA_F_NESTED, NULL, 0);
	return a;
}

static void nl_end(struct nlreq *r, struct nlattr *nest)
{
	nest->nla_len = (char *)nl_tail(r) - (char *)nest;
}

/* Sends `r` on the netlink socket `fd` and waits up to 2 s for the
 * kernel's answer, copied into `reply`; 0, or -1 with errno. */
static int nl_talk(int fd, struct nlreq *r, char *reply, size_t size)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	long long end = now_ms() + 2000;

	r->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	r->h.nlmsg_seq++;
	if (sendto(fd, r, r->h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		return -1;
	while (now_ms() < end) {
		static char buf[8192];
		struct nlmsghdr *h = (struct nlmsghdr *)buf;
		ssize_t n;

		if (wait_for(fd, POLLIN, 100) != 0)
			continue;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0)
			return -1;
		for (; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_ERROR) {
				int error = ((struct nlmsgerr *)NLMSG_DATA(h))->error;

				errno = -error;
				return error ? -1 : 0;
			}
			/* An answer before the acknowledgement. */
			if (h->nlmsg_len <= size)
				memcpy(reply, h, h->nlmsg_len);
		}
	}
	errno = ETIMEDOUT;
	return -1;
}

/* Creates (or, `create` 0, removes) the dummy device `name`. */
static int dummy_link(const char *name, int create)
{
	struct nlreq r = { 0 };
	struct ifinfomsg *ifi = NLMSG_DATA(&r.h);
	char reply[1024];
	int fd, rc;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -1;
	r.h.nlmsg_len = NLMSG_LENGTH(sizeof(*ifi));
	r.h.nlmsg_type = create ? RTM_NEWLINK : RTM_DELLINK;
	r.h.nlmsg_flags = create ? NLM_F_CREATE | NLM_F_EXCL : 0;
	ifi->ifi_family = AF_UNSPEC;
	if (create) {
		ifi->ifi_flags = IFF_UP;
		ifi->ifi_change = IFF_UP;
	}
	nl_put(&r, IFLA_IFNAME, name, strlen(name) + 1);
	if (create) {
		struct nlattr *info = nl_nest(&r, IFLA_LINKINFO);

		nl_put(&r, IFLA_INFO_KIND, "dummy", 6);
		nl_end(&r, info);
	}
	rc = nl_talk(fd, &r, reply, sizeof(reply));
	close(fd);
	return rc;
}

/* The id of the generic netlink family `name`, or -1. */
static int genl_family(int fd, const char *name)
{
	struct nlreq r = { 0 };
	struct genlmsghdr *g = NLMSG_DATA(&r.h);
	char reply[4096];
	struct nlmsghdr *h = (struct nlmsghdr *)reply;

	r.h.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	r.h.nlmsg_type = GENL_ID_CTRL;
	g->cmd = CTRL_CMD_GETFAMILY;
	g->version = 1;
	nl_put(&r, CTRL_ATTR_FAMILY_NAME, name, strlen(name) + 1);
	h->nlmsg_type = 0;
	/* The family message comes before the acknowledgement. */
	nl_talk(fd, &r, reply, sizeof(reply));
	if (h->nlmsg_type != GENL_ID_CTRL)
		return -1;
	for (struct nlattr *a = (struct nlattr *)((char *)NLMSG_DATA(h) + GENL_HDRLEN);
	     (char *)a + NLA_HDRLEN <= (char *)h + h->nlmsg_len && a->nla_len >= NLA_HDRLEN;
	     a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))
		if ((a->nla_type & NLA_TYPE_MASK) == CTRL_ATTR_FAMILY_ID)
			return *(unsigned short *)((char *)a + NLA_HDRLEN);
	return -1;
}

/* Enables (cmd TIPC_NL_BEARER_ENABLE) or disables the bearer `bearer`. */
static int tipc_bearer(int fd, int family, int cmd, const char *bearer)
{
	struct nlreq r = { 0 };
	struct genlmsghdr *g = NLMSG_DATA(&r.h);
	struct nlattr *nest;
	char reply[1024];

	r.h.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	r.h.nlmsg_type = family;
	g->cmd = cmd;
	g->version = TIPC_GENL_V2_VERSION;
	nest = nl_nest(&r, TIPC_NLA_BEARER);
	nl_put(&r, TIPC_NLA_BEARER_NAME, bearer, strlen(bearer) + 1);
	nl_end(&r, nest);
	return nl_talk(fd, &r, reply, sizeof(reply));
}

static int ex_tipc(NO_ARG)
{
	const char *dev = "ptload0";
	char bearer[32];
	int fd, family, probe, rc = 0;

	probe = socket(AF_TIPC, SOCK_RDM, 0);
	if (probe < 0)
		return 0; /* no tipc module */
	close(probe);
	snprintf(bearer, sizeof(bearer), "eth:%s", dev);
	dummy_link(dev, 0); /* left by a stopped round */
	if (dummy_link(dev, 1) != 0)
		return errno == EOPNOTSUPP ? 0 : FAIL("tipc: dummy device"); /* no dummy module */
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	family = fd < 0 ? -1 : genl_family(fd, TIPC_GENL_V2_NAME);
	if (family < 0) {
		rc = FAIL("tipc: generic netlink family " TIPC_GENL_V2_NAME);
	} else {
		if (tipc_bearer(fd, family, TIPC_NL_BEARER_ENABLE, bearer) != 0)
			rc = FAIL("tipc: enable bearer");
		if (tipc_bearer(fd, family, TIPC_NL_BEARER_DISABLE, bearer) != 0)
			rc = FAIL("tipc: disable bearer");
	}
	if (fd >= 0)
		close(fd);
	dummy_link(dev, 0);
	return rc;
}

static const struct exerciser exercisers[] = {
	{ "tcp", ex_tcp, 10 },
	{ "unix", ex_unix, 10 },
	{ "sctp", ex_sctp, 10 },
	{ "arp", ex_arp, 10 },
	{ "llc", ex_llc, 10 },
	{ "packet", ex_packet, 10 },
	{ "tipc", ex_tipc, 10 },
};

int main(int argc, char **argv)
{
	return RUN(exercisers);
}
