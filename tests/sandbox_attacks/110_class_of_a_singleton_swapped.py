# expect: ok
# says: put back
S.NegativeOne.__class__ = type(S.One)
'ok'
