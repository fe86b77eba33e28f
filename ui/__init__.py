"""The PyQt6 operator HMI. Every Qt import of the project lives in this package."""
