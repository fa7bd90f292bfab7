typedef int (*cb_t)(int);
extern int register_cb(cb_t);
static __attribute__((no_instrument_function, noinline)) int helper(int x) { return x * 5; }
int setup(void) { return register_cb(helper); }
int use_helper(int x) { return helper(x) + 1; }
