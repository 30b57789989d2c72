// Small conveniences for the dashboard's own pages. Everything works without this file:
// the forms are plain GET forms and the rows are plain links into the email frame.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const controls = document.querySelector("form[data-autosubmit]");
  if (controls) {
    const period = controls.querySelector("[data-period]");
    const customFields = controls.querySelectorAll("[data-custom-period]");
    const showCustom = () => {
      for (const field of customFields) field.hidden = period.value !== "custom";
    };
    if (period) {
      showCustom();
      period.addEventListener("change", showCustom);
    }
    // A changed choice applies at once, except "custom", which still needs its dates.
    controls.addEventListener("change", (event) => {
      const target = event.target;
      if (target.tagName === "SELECT" && !(target === period && period.value === "custom")) {
        controls.requestSubmit();
      }
    });
  }

  // Mark the row whose link is highlighted in the email frame.
  for (const link of document.querySelectorAll("a[data-row]")) {
    link.addEventListener("click", () => {
      for (const row of document.querySelectorAll("tr.is-selected")) {
        row.classList.remove("is-selected");
      }
      link.closest("tr").classList.add("is-selected");
    });
  }
});
