__attribute__((section(".init.text"), cold)) int setup_thing(int x) { return x + 2; }
int run(int x) { return x * 3; }
