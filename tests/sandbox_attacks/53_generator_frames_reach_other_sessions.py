# expect: ok
# says: found 0
# never: VICTIM-SECRET
# a generator's frame and its f_back chain, then every global reachable from them: nothing of another session
def gen():
    yield
g = gen(); next(g)
seen, found, f = set(), [], g.gi_frame
while f is not None:
    for scope in (f.f_globals, f.f_locals):
        for value in list(scope.values()):
            if isinstance(value, str) and 'VICTIM-SECRET' in value:
                found.append(value)
    f = f.f_back
print('found', len(found))
