# expect: ok
# says: truncated
print('x' * 10 ** 7)
