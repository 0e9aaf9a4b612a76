// Copy buttons of the organizer console: hidden until there is script to copy with (the text
// stays selectable, or the link openable, without it). A button copies the value of the field
// named by data-copy, or its own data-copy-text; its label says "copied" for two seconds.
for (const button of document.querySelectorAll("button.copy")) {
  button.hidden = false;
  const original = button.innerHTML;  // server-rendered markup, its hidden context for screen readers included
  button.addEventListener("click", async () => {
    const field = button.dataset.copy ? document.getElementById(button.dataset.copy) : null;
    const text = field ? field.value : button.dataset.copyText;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      if (!field) return;
      field.select();
      document.execCommand("copy");
    }
    button.textContent = button.dataset.copied || "Copied";
    setTimeout(() => { button.innerHTML = original; }, 2000);
  });
}
