// A bulk job's page: its progress from /ui/jobs/<id>.json every second until it finishes.
(function () {
  "use strict";
  const card = document.getElementById("job");
  if (!card) return;
  const done = ["succeeded", "failed", "cancelled"];
  const bar = document.getElementById("job-progress");
  async function refresh() {
    const answer = await fetch("/ui/jobs/" + card.dataset.job + ".json", { credentials: "same-origin" });
    if (!answer.ok) return;
    const job = await answer.json();
    for (const el of card.querySelectorAll("[data-job-field]")) el.textContent = String(job[el.dataset.jobField]);
    bar.max = job.total || 1;
    bar.value = job.processed;
    card.dataset.status = job.status;
    if (done.includes(job.status)) {
      const cancel = document.getElementById("job-cancel");
      if (cancel) cancel.remove();
      return;
    }
    setTimeout(refresh, 1000);
  }
  if (!done.includes(card.dataset.status)) setTimeout(refresh, 500);
})();
