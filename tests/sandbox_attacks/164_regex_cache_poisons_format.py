# expect: ok
# then: format(pi, '.10f')
# gives: '3.1415926536'
import re
re._cache[(str, r'\+?\d*\.(\d+)f', 0)] = re.compile(r'\+?\d*\.\d*(\d)f')
'ok'
