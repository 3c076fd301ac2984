# expect: timeout
# says: killed
# frames lead to the session's own serve loop; switching its timeout off only leaves the parent's hard kill
import sys
f = sys._getframe()
while f is not None:
    if 'session' in f.f_locals and hasattr(f.f_locals['session'], 'in_user_code'):
        f.f_locals['session'].in_user_code = False
    f = f.f_back
while True:
    pass
