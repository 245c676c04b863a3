// Boots with Debian's cloud kernel (the default); boot-matrix.ts has the tests.
import { describeBoots } from "./boot-matrix.js";

describeBoots("debian");
