int a(int x) { return x * 5; }
/* another comment,
   two lines longer */
int b(int x) { return a(x) + 1; }
