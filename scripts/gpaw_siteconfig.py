# GPAW build without MPI, against Debian's libxc, OpenBLAS and FFTW
# (used by scripts/install.sh through GPAW_CONFIG).
mpi = False
compiler = "gcc"
libraries = ["xc", "blas", "fftw3"]
fftw = True
