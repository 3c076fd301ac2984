# expect: error
# says: Operation not permitted
# the sessions share one UTS namespace: none may rename it for the others
import socket
socket.sethostname("pwned")
