struct conn { int state; int flags; int refs; long bytes; };
int conn_refs(struct conn *c) { return c->flags ? 0 : c->refs; }
