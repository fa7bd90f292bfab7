__attribute__((section(".init.text"))) int setup_thing(int x) { return x + 2; }
int user(int x) { return x; }
