# expect: error
# says: Operation not permitted
import socket
socket.socketpair()
