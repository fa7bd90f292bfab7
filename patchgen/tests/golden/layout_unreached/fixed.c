struct conn { int state; int refs; long bytes; };
int conn_state(struct conn *c) { return c->state; }
int add(int x) { return x + 2; }
