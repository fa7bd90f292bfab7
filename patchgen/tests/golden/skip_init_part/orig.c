__attribute__((section(".init.text"), cold)) int setup_thing(int x) { return x + 1; }
int run(int x) { return x * 2; }
