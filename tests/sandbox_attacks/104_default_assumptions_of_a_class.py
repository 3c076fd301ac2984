# expect: ok
# says: put back
# the facts a class's instances start from (a dict subclass)
Add.default_assumptions['zero'] = True
'ok'
