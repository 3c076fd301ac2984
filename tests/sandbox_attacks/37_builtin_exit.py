# expect: error
# says: SystemExit
exit()
