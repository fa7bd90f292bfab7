int counter(void) { static int count; return count += 3; }
int other(void) { static int count; return count += 2; }
