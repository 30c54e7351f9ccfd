"""A simulated RAK3172 (RUI3 firmware) LoRa module in P2P mode, behind a pseudo-terminal.

It answers the AT commands the agent uses (AT, AT+NWM, AT+P2P, AT+PRECV,
AT+PSEND) and prints `+EVT:RXP2P:<rssi>:<snr>:<hex>` for each frame injected
while it is receiving, as the real module does.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import tty


class Rak3172Simulator:
    def __init__(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.mode: int | None = None  # 0: P2P, 1: LoRaWAN
        self.p2p: str | None = None
        self.receiving = False
        self.commands: list[str] = []
        self.sent: list[bytes] = []
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rak3172-sim")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def inject(self, frame: bytes, rssi: int = -85, snr: int = 7) -> bool:
        """A frame heard on the air; printed only while in receive mode."""
        if not self.receiving:
            return False
        self._write(f"+EVT:RXP2P:{rssi}:{snr}:{frame.hex().upper()}")
        return True

    def inject_line(self, line: str) -> None:
        self._write(line)

    def _write(self, line: str) -> None:
        with self._write_lock:
            os.write(self._master, line.encode() + b"\r\n")

    def _run(self) -> None:
        buffer = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                buffer += os.read(self._master, 1024)
            except OSError:
                continue
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                line = raw.decode("ascii", "replace").strip()
                if line:
                    self.commands.append(line)
                    for answer in self._answer(line):
                        self._write(answer)

    def _answer(self, line: str) -> list[str]:
        command, _, argument = line.partition("=")
        if command == "AT":
            return ["OK"]
        if command == "AT+NWM" and argument in ("0", "1"):
            self.mode = int(argument)
            return ["OK"]
        if command == "AT+P2P" and self.mode == 0 and len(argument.split(":")) == 6:
            self.p2p = argument
            return ["OK"]
        if command == "AT+PRECV" and self.mode == 0 and argument.isdigit():
            self.receiving = argument != "0"
            return ["OK"]
        if command == "AT+PSEND" and self.mode == 0 and not self.receiving:
            try:
                self.sent.append(bytes.fromhex(argument))
            except ValueError:
                return ["AT_PARAM_ERROR"]
            return ["OK", "+EVT:TXP2P DONE"]
        return ["AT_ERROR"]
