# expect: ok
# says: forged
# the reply pipe and the request id are reachable from a traceback's frames; a forged reply only answers this
# session's own call, and the real reply that follows is discarded as stale by the parent
import json, os, struct, sys
try:
    raise ValueError
except ValueError as exc:
    f = exc.__traceback__.tb_frame
while f is not None and 'request' not in f.f_locals:
    f = f.f_back
request, resp_fd = f.f_locals['request'], f.f_locals['resp_fd']
body = json.dumps({"id": request["id"], "status": "ok", "stdout": "", "result": "'forged'", "error": None,
                   "retire": False}).encode()
os.write(resp_fd, struct.pack('>I', len(body)) + body)
