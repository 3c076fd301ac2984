# expect: error
# says: EOFError
input('answer? ')
