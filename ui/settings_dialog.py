"""The per-conversation settings: system prompt, sampling and context length.

Values start from what the conversation has, falling back to the app defaults; "Reset to
defaults" fills in the defaults again. The dialog only collects values; the window saves them.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QLabel, QPlainTextEdit, QPushButton,
    QSpinBox, QVBoxLayout, QWidget,
)

log = logging.getLogger(__name__)

# key: (label, kind, minimum, maximum, step, decimals, help)
FIELDS: dict[str, tuple] = {
    "temperature": ("Temperature", float, 0.0, 2.0, 0.05, 2,
                    "Higher is more varied, 0 always picks the likeliest word."),
    "top_p": ("Top-p", float, 0.01, 1.0, 0.01, 2, "Sample only from the words making up this share of the probability."),
    "top_k": ("Top-k", int, 0, 1000, 1, 0, "Sample only from this many likeliest words (0: no limit)."),
    "min_p": ("Min-p", float, 0.0, 0.99, 0.01, 2, "Skip words less likely than this share of the likeliest one."),
    "repeat_penalty": ("Repeat penalty", float, 0.5, 2.5, 0.05, 2, "Above 1 discourages repeating words."),
    "max_tokens": ("Max tokens", int, 1, 131072, 64, 0, "The longest reply, in tokens."),
    "n_ctx": ("Context length", int, 256, 131072, 256, 0,
              "How many tokens of the conversation the model sees; older messages beyond it are left out."),
    "seed": ("Seed", int, -1, 2**31 - 1, 1, 0, "The same seed and settings give the same reply; random: a new one each time."),
}


class ConversationSettingsDialog(QDialog):
    def __init__(self, values: dict, defaults: dict, parent: QWidget | None = None,
                 title: str = "", n_ctx_train: int = 0):
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Conversation settings")
        self.defaults = dict(defaults)
        self.setMinimumWidth(520)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(20, 18, 20, 16)
        outer.setSpacing(12)
        heading = QLabel(f"Settings for “{title}”" if title else "Conversation settings")
        heading.setObjectName("dialogHeading")
        heading.setWordWrap(True)
        outer.addWidget(heading)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignRight | Qt.AlignVCenter)
        form.setHorizontalSpacing(14)
        form.setVerticalSpacing(8)
        self.system_prompt = QPlainTextEdit()
        self.system_prompt.setObjectName("systemPromptEdit")
        self.system_prompt.setPlaceholderText("Instructions the model reads before the conversation (optional)")
        self.system_prompt.setTabChangesFocus(True)
        self.system_prompt.setFixedHeight(96)
        form.addRow("System prompt", self.system_prompt)

        self.inputs: dict[str, QSpinBox | QDoubleSpinBox] = {}
        for key, (label, kind, lo, hi, step, decimals, help_text) in FIELDS.items():
            if kind is float:
                box = QDoubleSpinBox()
                box.setDecimals(decimals)
            else:
                box = QSpinBox()
            box.setRange(lo, hi)
            box.setSingleStep(step)
            box.setToolTip(help_text)
            box.setObjectName(f"{key}Input")
            box.setMinimumWidth(140)
            # The stylesheet hides the tiny arrow buttons (hard to hit, and they clash with the
            # flat fields); typed values, arrow keys and the wheel still step. Hiding them with
            # NoButtons instead collapses the text field to 1 px under a stylesheet.
            box.lineEdit().setTextMargins(6, 0, 6, 0)
            box.setAlignment(Qt.AlignLeft | Qt.AlignVCenter)
            if key == "seed":
                box.setSpecialValueText("random")   # shown for the minimum, -1
            self.inputs[key] = box
            form.addRow(label, box)
        outer.addLayout(form)

        hint = "Hover a setting for what it does."
        if n_ctx_train:
            hint += f"\nThe loaded model was trained on up to {n_ctx_train:,} tokens of context."
        # Explicit lines, not word wrap: a wrapping label under-reports its height to the
        # dialog, which then squeezes the form.
        self.hint = QLabel(hint)
        self.hint.setObjectName("dialogHint")
        outer.addWidget(self.hint)

        buttons = QDialogButtonBox(QDialogButtonBox.Save | QDialogButtonBox.Cancel)
        self.reset_button = QPushButton("Reset to defaults")
        self.reset_button.setObjectName("resetButton")
        buttons.addButton(self.reset_button, QDialogButtonBox.ResetRole)
        self.reset_button.clicked.connect(self.reset_to_defaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        outer.addWidget(buttons)

        self.set_values({**self.defaults, **values})

    def set_values(self, values: dict) -> None:
        self.system_prompt.setPlainText(str(values.get("system_prompt", "")))
        for key, box in self.inputs.items():
            if key in values:
                box.setValue(values[key])

    def values(self) -> dict:
        out: dict = {"system_prompt": self.system_prompt.toPlainText()}
        for key, box in self.inputs.items():
            out[key] = int(box.value()) if isinstance(box, QSpinBox) else round(float(box.value()), 4)
        return out

    def reset_to_defaults(self) -> None:
        self.set_values(self.defaults)
