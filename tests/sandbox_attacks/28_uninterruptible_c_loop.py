# expect: timeout
# says: killed
# a pure-C loop never returns to the interpreter, so only the parent's hard kill can stop it
sum(range(10 ** 13))
