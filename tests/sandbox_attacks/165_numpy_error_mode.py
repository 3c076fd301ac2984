# expect: ok
# then: float(np.float64(1.0) / np.float64(0.0))
# gives: inf
np.seterr(all='raise')
'ok'
