struct conn { int state; int refs; long bytes; };
int conn_refs(struct conn *c) { return c->refs; }
