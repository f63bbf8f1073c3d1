// The admin's autocomplete boxes (select2) render a combobox labelled by its own (often empty)
// text: point it at the label of the field it stands for instead (axe: aria-input-field-name,
// serious). Django starts select2 in a jQuery ready handler (run asynchronously, in the order
// registered); this deferred script registers its own after Django's, so it runs after it.
(function () {
  "use strict";
  function nameAutocompletes() {
    document.querySelectorAll("select.admin-autocomplete").forEach(function (select) {
      var label = select.labels && select.labels[0];
      var box = select.parentElement.querySelector(".select2-selection");
      if (!label || !box) {
        return;
      }
      if (!label.id) {
        label.id = select.id + "-label";
      }
      box.setAttribute("aria-labelledby", label.id);
      var shown = box.querySelector(".select2-selection__rendered");
      if (shown) {
        shown.setAttribute("aria-label", label.textContent.replace(/:\s*$/, "").trim());
      }
    });
  }
  if (window.django && window.django.jQuery) {
    window.django.jQuery(nameAutocompletes);
  } else {
    window.addEventListener("load", nameAutocompletes);
  }
})();
