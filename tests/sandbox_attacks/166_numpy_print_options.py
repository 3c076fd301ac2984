# expect: ok
# then: repr(np.array([1/3, 2/3]))
# gives: 'array([0.33333333, 0.66666667])'
np.set_printoptions(precision=2)
'ok'
