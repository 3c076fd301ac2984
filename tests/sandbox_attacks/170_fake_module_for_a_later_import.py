# expect: ok
# then: import statistics; statistics.mean([1, 2, 3, 4])
# gives: 2.5
import sys, types
sys.modules['statistics'] = types.SimpleNamespace(mean=lambda v: 0, median=lambda v: 0)
'ok'
