# expect: ok
# then: float(np.sqrt(np.float64(-1.0)))
# gives: nan
import warnings
warnings.simplefilter('error')
'ok'
