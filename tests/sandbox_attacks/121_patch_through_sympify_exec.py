# expect: ok
# says: put back
# code compiled and run at run time (sympify evaluates its string): the cell's bytecode shows none of it
sympify("exec('from sympy.printing.str import StrPrinter; StrPrinter._print_Integer = lambda self, e: chr(55)')")
'ok'
