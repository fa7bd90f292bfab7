struct stats;
extern void publish(struct stats *s);
int handle(int x) { return x + 1; }
