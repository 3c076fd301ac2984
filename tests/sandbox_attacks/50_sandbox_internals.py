# expect: error
# says: not allowed
import tool_sandbox.worker
