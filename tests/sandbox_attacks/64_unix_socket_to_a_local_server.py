# expect: error
# says: Operation not permitted
# the test runs a unix-socket server at this path (as a docker socket would be); no socket can even be made
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect('__UNIX_SOCKET__')
s.sendall(b'pwned')
