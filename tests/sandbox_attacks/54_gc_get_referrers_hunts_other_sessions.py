# expect: ok
# says: found 0
# never: VICTIM-SECRET
import gc, sys
found = [o for o in gc.get_objects() if isinstance(o, dict) and any(isinstance(v, str) and 'VICTIM-SECRET' in v for v in o.values())]
found += [r for r in gc.get_referrers(sys.modules) if isinstance(r, dict) and 'victim_secret' in r]
print('found', len(found))
