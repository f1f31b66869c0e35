"""Host adapters: the only modules that import a WebUI's `modules`.

webui.py is what A1111 and Forge share; a1111.py and forge.py are one host each and never import each other.
"""
