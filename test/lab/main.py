"""The JupyterLab test app's server: Debian's jupyterlab_server (LabServerApp on jupyter_server)
serving the frontend that build.js bundles into app/ (static/, schemas/, themes/).

Run with /usr/bin/python3 (Debian's packages), e.g.
    TSLAUNCH_LAB_EXTENSIONS_PATH=<prefix>/share/jupyter/labextensions \
    TSLAUNCH_LAB_STATE_DIR=<temp dir> \
    /usr/bin/python3 test/lab/main.py --allow-root --no-browser --ServerApp.port=P --ServerApp.token=T \
        --ServerApp.root_dir=D

Environment:
  TSLAUNCH_LAB_EXTENSIONS_PATH  folders (os.pathsep-separated) holding prebuilt extensions
                                (<folder>/<package name>/package.json); none when unset
  TSLAUNCH_LAB_STATE_DIR        where user settings and workspaces go (default: a temp dir)
"""
import json
import os
import tempfile

# Configuration files on this machine must not change the app under test.
os.environ["JUPYTER_NO_CONFIG"] = "1"

from jupyterlab_server import LabServerApp  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
APP = os.path.join(HERE, "app")

with open(os.path.join(HERE, "package.json"), encoding="utf-8") as f:
    VERSION = json.load(f)["version"]

STATE = os.environ.get("TSLAUNCH_LAB_STATE_DIR") or tempfile.mkdtemp(prefix="tsl-lab-state-")
EXTENSIONS = [p for p in os.environ.get("TSLAUNCH_LAB_EXTENSIONS_PATH", "").split(os.pathsep) if p]


def _jupyter_server_extension_points():
    return [{"module": __name__, "app": TestLabApp}]


class TestLabApp(LabServerApp):
    name = "lab"
    app_name = "JupyterLab (tslaunch tests)"
    app_version = VERSION
    load_other_extensions = False
    static_dir = os.path.join(APP, "static")
    schemas_dir = os.path.join(APP, "schemas")
    themes_dir = os.path.join(APP, "themes")
    templates_dir = os.path.join(HERE, "templates")
    app_settings_dir = os.path.join(HERE, "settings")
    user_settings_dir = os.path.join(STATE, "user-settings")
    workspaces_dir = os.path.join(STATE, "workspaces")
    labextensions_path = EXTENSIONS

    def initialize_settings(self):
        if not os.path.exists(os.path.join(self.static_dir, "bundle.js")):
            raise SystemExit(f"{self.static_dir}/bundle.js is missing: build the app first (node {HERE}/build.js)")
        super().initialize_settings()
        self.serverapp.web_app.settings["terminals_available"] = False


if __name__ == "__main__":
    TestLabApp.launch_instance()
