"""What every model call of one scheduled run shares: its model, prompt, output budget and log."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.events import EventType
from common.schedules import ScheduleConfig
from worker.answering.answerer import Answerer
from worker.answering.gate import ProviderGate
from worker.answering.provider import ChatRequest
from worker.answering.publisher import EventPublisher
from worker.context import WorkerContext
from worker.schedules.mapreduce import CallResult


@dataclass(frozen=True)
class RunCalls:
    ctx: WorkerContext
    run_id: str
    schedule: ScheduleConfig
    model: str
    max_tokens: int
    publisher: EventPublisher

    def messages(self, user: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.schedule.prompt}, {"role": "user", "content": user}]

    def params(self) -> dict[str, Any]:
        return {"temperature": self.ctx["config"].provider.temperature, "max_tokens": self.max_tokens}

    async def streamed(self, part: str, user: str) -> CallResult:
        """One call, streamed into the run's log under ``part``, under the semaphore, gate and retries."""
        config = self.ctx["config"]
        # The run's own 401 halt: its other calls stop rather than each be refused in turn.
        gate = ProviderGate(
            self.ctx["redis"], self.run_id, self.ctx["provider"].endpoint, config, self.ctx["gate_memory"]
        )
        request = ChatRequest(messages=self.messages(user), model=self.model, params=self.params())
        answerer = Answerer(
            self.ctx["provider"], self.ctx["semaphore"], config, self.publisher, gate, part=part
        )
        answer = await answerer.answer(request)
        self.publisher.emit(EventType.PART_DONE, answer.attempts, part=part, usage=answer.usage)
        return CallResult(answer.text, answer.usage)
