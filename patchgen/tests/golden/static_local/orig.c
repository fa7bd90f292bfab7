int counter(void) { static int count; return ++count; }
int other(void) { static int count; return count += 2; }
