struct conn { int state; int refs; };
int conn_state(struct conn *c) { return c->state; }
int add(int x) { return x + 1; }
