# expect: ok
# then: pretty(pi)
# gives: 'π'
from sympy.printing.pretty.pretty_symbology import pretty_use_unicode
pretty_use_unicode(False)
'ok'
