struct stats { int hits; int extra; int misses; };
extern void publish(struct stats *s);
static __attribute__((noinline)) int count(struct stats *s, int x) { s->hits += x; publish(s); return s->misses; }
int handle(int x) { struct stats s = { 0 }; return count(&s, x) + 1; }
