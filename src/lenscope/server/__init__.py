"""The activation server: the debugger and its instruments over HTTP, and the web app.

```python
from lenscope.server import ServerConfig, ServerState, create_app, serve
serve(ServerConfig("mini"))                       # what `lenscope serve mini` runs
app = create_app(ServerState(ServerConfig("x"), model))   # an ASGI app around a loaded model
```
"""

from lenscope.server.app import create_app
from lenscope.server.config import ServerConfig
from lenscope.server.run import serve
from lenscope.server.state import ServerState

__all__ = [
    "ServerConfig",
    "ServerState",
    "create_app",
    "serve",
]
