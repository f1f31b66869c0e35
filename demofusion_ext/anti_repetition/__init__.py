"""Anti-repetition (AccDiffusion, opt-in): the two options that fight repeated objects, and their parts.

- Per-view prompts (setting `view_prompts`): phase 1's cross-attention is recorded (attention_capture.py), each
  prompt word's map becomes a mask (prompt_masks.py), and each local window of a later phase keeps the words whose
  masks cover enough of it, written back as a prompt in the WebUI's own syntax (prompt_words.py). The host side
  (encoding the texts, writing them into each view's cond rows) is demofusion_ext/hosts/view_prompts.py.
- Window interaction (setting `window_interaction`): the dilated global views exchange values before each model
  call (window_interaction.py).
docs/ANTI-REPETITION.md explains both.
"""
