/* The dispatch note's print button; the note itself is complete without any script. */
"use strict";

document.getElementById("print").addEventListener("click", () => window.print());
