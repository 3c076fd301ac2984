# expect: ok
# the result is released by the session after the call: its __del__ patches where the check sees it
class Evil:
    def __repr__(self):
        return 'evil'
    def __del__(self):
        import sympy
        sympy.solve = lambda *args, **kwargs: [42]
Evil()
