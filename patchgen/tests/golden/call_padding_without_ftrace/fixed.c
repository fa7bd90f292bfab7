/* An object built without ftrace on 6.12 (like lib/): no __mcount_loc, but
 * CONFIG_CALL_PADDING still gives every function a
 * __patchable_function_entries entry, which is no ftrace site. */
__attribute__((no_instrument_function)) int quiet(int x) { return x ^ 2; }
__attribute__((no_instrument_function)) int calm(int x) { return x + 3; }
