# expect: ok
# says: put back
import typing
def hinted(a: "exec('from sympy.printing.str import StrPrinter; StrPrinter._print_Integer = lambda self, e: chr(55)')"):
    pass
typing.get_type_hints(hinted)
'ok'
