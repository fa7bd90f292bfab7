__attribute__((section(".init.text"))) int setup_thing(int x) { return x + 1; }
int user(int x) { return x; }
