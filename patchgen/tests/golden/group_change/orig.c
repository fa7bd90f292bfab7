/* A COMDAT section group (as C++ inline functions or explicit .section
 * directives make them): its contents change. */
asm(".section .text.shared_helper,\"axG\",@progbits,shared_helper,comdat\n"
    ".globl shared_helper\n.type shared_helper,@function\n"
    "shared_helper:\n\tmovl $1, %eax\n\tret\n.size shared_helper, .-shared_helper\n.previous\n");
int use_it(int x) { return x + 1; }
