# Run by the WebUI when the extension is installed. The extension needs nothing beyond what the WebUI
# (A1111 or Forge) already ships - torch, gradio - so it installs nothing and works offline.
